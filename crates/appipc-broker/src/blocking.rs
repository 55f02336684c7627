//! Work that may block (file-system walks and copies, opening client-named files, large
//! database transactions) runs here, off the async threads, on a bounded number of tokio
//! blocking threads: a slow or hostile request delays only itself and at most that many
//! others, never the sessions' read loops.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// How many blocking jobs run at once.
pub const DEFAULT_THREADS: usize = 4;

/// A bounded pool of blocking threads.
#[derive(Debug)]
pub struct BlockingPool {
    slots: Arc<Semaphore>,
}

/// A blocking job panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("a blocking job of the broker failed: {0}")]
pub struct JobFailed(String);

impl BlockingPool {
    /// A pool running at most `threads` jobs at a time.
    pub fn new(threads: usize) -> BlockingPool {
        BlockingPool { slots: Arc::new(Semaphore::new(threads.max(1))) }
    }

    /// Runs `f` on a blocking thread once a slot is free; waiting for a slot does not block
    /// the async runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JobFailed> {
        let permit =
            self.slots.clone().acquire_owned().await.map_err(|e| JobFailed(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(|e| JobFailed(e.to_string()))
    }
}

impl Default for BlockingPool {
    fn default() -> Self {
        BlockingPool::new(DEFAULT_THREADS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_n_at_once_and_the_runtime_stays_free() {
        let pool = Arc::new(BlockingPool::new(2));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut jobs = Vec::new();
        for _ in 0..8 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            jobs.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(30));
                    running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
                .await
                .unwrap();
            }));
        }
        // The async threads still answer while the jobs wait or run.
        tokio::time::timeout(std::time::Duration::from_millis(20), tokio::task::yield_now())
            .await
            .unwrap();
        for j in jobs {
            j.await.unwrap();
        }
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 2);
    }
}
