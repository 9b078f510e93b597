//! A recipe's stdout and stderr, written to the run's [`Console`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::console::Console;

/// One of the console's two streams.
#[derive(Clone)]
pub struct Out {
    console: Arc<dyn Console>,
    stderr: bool,
}

impl Out {
    /// The recipe's stdout.
    pub fn stdout(console: Arc<dyn Console>) -> Out {
        Out { console, stderr: false }
    }

    /// The recipe's stderr.
    pub fn stderr(console: Arc<dyn Console>) -> Out {
        Out { console, stderr: true }
    }
}

impl IsTerminal for Out {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Out {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for Out {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.stderr {
            self.console.err(buf);
        } else {
            self.console.out(buf);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
