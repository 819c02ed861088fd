//! A fast WebSocket echo server (the benchmark's upstream): raw tokio, a minimal RFC 6455 codec, one
//! read → echo every whole frame → one write per batch. Pings are answered with pongs, a close frame is
//! echoed and the connection closed. Plain HTTP requests (the sidecar's prober) get a short answer.
//!
//! `bench-echo --listen 127.0.0.1:PORT [--threads 1]`

use std::io;

use iskra_ws_bench::{accept_key, apply_mask, head_end, parse_header, push_frame, Args};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let args = Args::parse(1);
    let listen = args.str("listen", "127.0.0.1:9001");
    let threads: usize = args.num("threads", 1);
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("runtime");
    rt.block_on(async move {
        let l = TcpListener::bind(&listen).await.expect("bind");
        loop {
            match l.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(async move {
                        let _ = conn(s).await;
                    });
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    });
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn conn(mut s: TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if buf.len() > 16 * 1024 {
            return Ok(());
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(1024);
        }
        if s.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        if let Some(e) = head_end(&buf) {
            break e;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let upgrade = header(&head, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = header(&head, "sec-websocket-key");
    let (true, Some(key)) = (upgrade, key) else {
        let ok = head.starts_with("GET /health ");
        let resp: &[u8] = if ok {
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
        } else {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        };
        s.write_all(resp).await?;
        s.shutdown().await?;
        return Ok(());
    };
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    s.write_all(resp.as_bytes()).await?;
    drop(head);
    buf.drain(..end);
    echo(s, buf).await
}

async fn echo(mut s: TcpStream, mut inb: Vec<u8>) -> io::Result<()> {
    let mut out: Vec<u8> = Vec::new();
    loop {
        let mut pos = 0;
        let mut closing = false;
        while let Some(h) = parse_header(&inb[pos..]) {
            let total = h.header_len + h.len;
            if inb.len() - pos < total {
                break;
            }
            let payload = &mut inb[pos + h.header_len..pos + total];
            if let Some(m) = h.mask {
                apply_mask(payload, m);
            }
            match h.opcode() {
                0x9 => push_frame(&mut out, 0x8A, payload, None),
                0xA => {}
                0x8 => {
                    push_frame(&mut out, 0x88, payload, None);
                    closing = true;
                }
                _ => push_frame(&mut out, h.b0, payload, None),
            }
            pos += total;
            if closing {
                break;
            }
        }
        inb.drain(..pos);
        if !out.is_empty() {
            s.write_all(&out).await?;
            out.clear();
        }
        if closing {
            // The server closes the TCP connection first (RFC 6455 §7.1.1): TIME_WAIT stays here.
            return Ok(());
        }
        let need = if inb.len() < 8 * 1024 {
            8 * 1024
        } else {
            inb.len()
        };
        if inb.capacity() - inb.len() < need / 2 {
            inb.reserve(need);
        }
        if s.read_buf(&mut inb).await? == 0 {
            return Ok(());
        }
    }
}
