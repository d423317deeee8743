//! `strata dev-cluster --nodes N`: a local cluster to try things on. N
//! combined nodes (broker and controller voter each) run as child processes
//! of this one on loopback, with their data under one directory and each
//! node's log in its own `strata.log`; the bootstrap list is printed once
//! all serve, and Ctrl-C (or SIGTERM) stops them all. A node that exits
//! (killed to try a failover) is reported; the others go on.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{bail, Context, Result};

#[derive(clap::Args)]
pub struct DevClusterArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Where the nodes keep their data, one `node-<id>` directory each.
    #[arg(long, default_value = "strata-dev-cluster")]
    data_dir: PathBuf,
    /// The first node's client port; node i listens on BASE+i-1, its
    /// controller listener on BASE+100+i-1 and its metrics on BASE+200+i-1.
    /// 0 takes free ports.
    #[arg(long, default_value_t = 9092)]
    base_port: u16,
}

/// The ports of one node.
struct Ports {
    client: u16,
    controller: u16,
    metrics: u16,
}

fn ports(args: &DevClusterArgs) -> Result<Vec<Ports>> {
    // Every listener stays bound until all are chosen: the ports differ.
    let mut held = Vec::new();
    let mut free_port = || -> Result<u16> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        held.push(listener);
        Ok(port)
    };
    (0..args.nodes)
        .map(|i| {
            if args.base_port == 0 {
                return Ok(Ports {
                    client: free_port()?,
                    controller: free_port()?,
                    metrics: free_port()?,
                });
            }
            let port = |offset: u16| {
                args.base_port
                    .checked_add(offset + i)
                    .context("--base-port too high for this many nodes")
            };
            Ok(Ports {
                client: port(0)?,
                controller: port(100)?,
                metrics: port(200)?,
            })
        })
        .collect()
}

pub fn run(args: &DevClusterArgs) -> Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let ports = ports(args)?;
    let voters: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{}", i + 1, p.controller))
        .collect();
    let binary = std::env::current_exe().context("finding the strata binary")?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc_handler(move || flag.store(true, Ordering::Relaxed))?;

    let mut children: Vec<Child> = Vec::new();
    let mut ready = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let id = i + 1;
        let dir = args.data_dir.join(format!("node-{id}"));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = File::create(dir.join("strata.log")).context("creating the node's log")?;
        let mut child = Command::new(&binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(&dir)
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{}", port.metrics))
            .args(["--set", &format!("node.id={id}")])
            .args([
                "--set",
                &format!("controller.quorum.voters={}", voters.join(",")),
            ])
            .args([
                "--set",
                &format!(
                    "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                    port.client, port.controller
                ),
            ])
            .args(["--set", "controller.listener.names=CONTROLLER"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting a node")?;
        let stdout = child.stdout.take().expect("piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("listening on ") {
                    let _ = sender.send(address.to_string());
                }
            }
        });
        children.push(child);
        ready.push(receiver);
    }

    let mut bootstrap = Vec::new();
    for (i, receiver) in ready.iter().enumerate() {
        loop {
            if stop.load(Ordering::Relaxed) {
                return stop_all(&mut children);
            }
            match receiver.recv_timeout(Duration::from_millis(100)) {
                Ok(address) => {
                    bootstrap.push(address);
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let log = args
                        .data_dir
                        .join(format!("node-{}", i + 1))
                        .join("strata.log");
                    let _ = stop_all(&mut children);
                    bail!(
                        "node {} stopped before serving; see {}",
                        i + 1,
                        log.display()
                    );
                }
            }
        }
    }
    println!("bootstrap: {}", bootstrap.join(","));
    println!(
        "{} nodes, data and logs under {}; Ctrl-C stops them",
        args.nodes,
        args.data_dir.display()
    );
    // A node that dies is reported and the others go on: killing one is
    // how failover is tried.
    let mut exited = vec![false; children.len()];
    while !stop.load(Ordering::Relaxed) && exited.contains(&false) {
        for (i, child) in children.iter_mut().enumerate() {
            if exited[i] {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!("node {} exited ({status})", i + 1);
                exited[i] = true;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stop_all(&mut children)
}

/// SIGTERM to every node still running, then waits for each.
fn stop_all(children: &mut [Child]) -> Result<()> {
    for child in children.iter_mut() {
        if let Ok(None) = child.try_wait() {
            // SAFETY: kill(2) with a child's pid and SIGTERM has no memory effects.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
    println!("stopped");
    Ok(())
}

/// Calls `on_signal` on SIGINT or SIGTERM (from a thread of its own).
fn ctrlc_handler(on_signal: impl Fn() + Send + 'static) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal runtime")?;
    let signalled = runtime.block_on(async { crate::shutdown_signal() })?;
    std::thread::spawn(move || {
        runtime.block_on(signalled);
        on_signal();
    });
    Ok(())
}
