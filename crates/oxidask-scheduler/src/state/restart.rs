//! `Client::restart` (Dask's `Client.restart`): forget every task, restart every worker.

use oxidask_protocol::{ToClient, ToWorker, WireError, WireKey};

use super::{ClientId, SchedulerState, TaskId, WorkerId};

impl SchedulerState {
    /// Client `c` restarts the cluster: each client's keys are cancelled (their futures
    /// fail with `Cancelled`), fire-and-forget tasks are dropped, and each worker is told to
    /// restart and removed at once (its nanny starts a fresh process, which joins as a new
    /// worker; one without a nanny just exits). The reply says how many workers there were,
    /// so the client can wait for as many to come back.
    pub(crate) fn restart(&mut self, c: ClientId, request: u64) {
        let clients: Vec<ClientId> = (0..self.clients.len() as u32)
            .map(ClientId)
            .filter(|id| {
                // Not the pseudo-client holding coordination objects' futures: stored
                // futures stay (and are recomputed once workers are back).
                self.clients[id.0 as usize]
                    .as_ref()
                    .is_some_and(|r| r.conn != super::coord::HOLDER_CONN)
            })
            .collect();
        for client in clients {
            let mut wanted: Vec<TaskId> = self.clients[client.0 as usize]
                .as_ref()
                .map(|r| r.wanted.iter().copied().collect())
                .unwrap_or_default();
            wanted.sort_unstable();
            for t in wanted {
                let key = WireKey::from(&self.task(t).key);
                self.unwant(client, t);
                self.send_client(
                    client,
                    ToClient::KeyErred {
                        key,
                        error: WireError {
                            key: Some(key),
                            op: String::new(),
                            kind: oxidask_protocol::ErrorKind::Cancelled,
                            message: format!(
                                "{key} was cancelled: the cluster restarted (Client.restart)"
                            ),
                            causes: Vec::new(),
                            detail: None,
                        },
                    },
                );
            }
        }
        let pinned: Vec<TaskId> = (0..self.tasks.len() as u32)
            .map(TaskId)
            .filter(|&t| self.tasks[t.0 as usize].as_ref().is_some_and(|r| r.pinned))
            .collect();
        for t in pinned {
            self.task_mut(t).pinned = false;
            self.release_queue.push(t);
        }
        let workers: Vec<WorkerId> = self.live_workers().map(|(w, _)| w).collect();
        let reason = "the cluster is restarting (Client.restart)";
        for &w in &workers {
            self.send_worker(
                w,
                ToWorker::Restart {
                    reason: reason.to_owned(),
                },
            );
            self.remove_worker(w, reason, true);
        }
        self.send_client(
            c,
            ToClient::Restarted {
                request,
                workers: workers.len() as u32,
            },
        );
    }
}
