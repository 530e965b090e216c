//! A scripted upstream on raw loopback sockets: for each (bodiless) request head, a function
//! gives the bytes to write and what to do next; it counts the connections it accepted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the scripted upstream does after writing an answer.
#[derive(Clone, Copy)]
pub enum Then {
    /// Waits for the next request on the connection.
    KeepOpen,
    /// Closes the connection at once.
    Close,
    /// Closes the connection after this long (an idle timeout shorter than the proxy's).
    CloseAfter(Duration),
}

/// An upstream on raw sockets: for each (bodiless) request head, `answer` gives the bytes to
/// write and what to do next. Counts accepted connections.
pub async fn scripted(answer: fn(&str) -> (Vec<u8>, Then)) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let (bytes, then) = answer(&head);
                        if socket.write_all(&bytes).await.is_err() {
                            return;
                        }
                        match then {
                            Then::KeepOpen => {}
                            Then::Close => return,
                            Then::CloseAfter(wait) => {
                                tokio::time::sleep(wait).await;
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}
