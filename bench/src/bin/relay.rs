//! A plain byte relay: accept, dial the upstream, `tokio::io::copy_bidirectional`. The floor any
//! WebSocket-aware proxy is measured against.
//!
//! `bench-relay --listen 127.0.0.1:PORT --upstream 127.0.0.1:ECHO [--threads 0]` (0: one per core)

use iskra_ws_bench::Args;
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let args = Args::parse(1);
    let listen = args.str("listen", "127.0.0.1:9002");
    let upstream = args.str("upstream", "127.0.0.1:9001");
    let threads: usize = args.num("threads", 0);
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        b.worker_threads(threads);
    }
    let rt = b.enable_all().build().expect("runtime");
    rt.block_on(async move {
        let l = TcpListener::bind(&listen).await.expect("bind");
        loop {
            let Ok((mut c, _)) = l.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let _ = c.set_nodelay(true);
                let Ok(mut u) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = u.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
            });
        }
    });
}
