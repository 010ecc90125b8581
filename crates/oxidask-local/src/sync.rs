//! The synchronous scheduler: one task at a time on the calling thread, in plan order.
//!
//! For debugging (a panic or breakpoint happens right where the task runs) and as the
//! baseline the threaded scheduler is compared with. It frees each result as soon as its last
//! reader has run, exactly like the threaded scheduler, and nested `compute()` calls made by
//! its tasks run synchronously too.

use std::sync::Arc;
use std::time::Instant;

use oxidask_core::compute::{enter_scheduler, Compute};
use oxidask_core::exec::{execute, DepValues};
use oxidask_core::{Error, Graph, Key, Plan, PlanOptions, Value};

use crate::stats::RunStats;

/// Runs graphs on the calling thread.
///
/// ```
/// use oxidask_core::{delayed, Collection};
/// use oxidask_local::Synchronous;
/// let x = delayed(2i64).map(|v| v * 21);
/// assert_eq!(x.compute_with(&Synchronous::new()).unwrap(), 42);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Synchronous {
    options: PlanOptions,
}

impl Default for Synchronous {
    fn default() -> Self {
        Synchronous::new()
    }
}

impl Synchronous {
    /// A synchronous scheduler that fuses linear chains.
    pub fn new() -> Synchronous {
        Synchronous {
            options: PlanOptions::default(),
        }
    }

    /// Whether to fuse linear chains (on by default).
    pub fn fuse(mut self, on: bool) -> Synchronous {
        self.options.fuse = on;
        self
    }

    /// Runs `outputs` of `graph` and reports what the run did.
    pub fn run(&self, graph: &Graph, outputs: &[Key]) -> Result<(Vec<Value>, RunStats), Error> {
        let start = Instant::now();
        let plan = graph.plan(outputs, self.options)?;
        let _nested = enter_scheduler(Arc::new(*self));
        let mut store = Store::new(&plan);
        for i in 0..plan.len() as u32 {
            if plan.is_fused_into_prev(i) {
                continue;
            }
            let mut cur = i;
            let mut deps = store.gather(graph, &plan, cur);
            let value = loop {
                let pos = plan.graph_position(cur);
                let v = execute(graph.key_at(pos), graph.task_at(pos), deps)?;
                match plan.fused_next(cur) {
                    Some(next) => {
                        deps = DepValues::new();
                        deps.push(*graph.key_at(pos), v);
                        cur = next;
                    }
                    None => break v,
                }
            };
            store.put(&plan, cur, value);
        }
        let values = plan.outputs().iter().map(|&o| store.read(o)).collect();
        let stats = RunStats {
            tasks: plan.len(),
            units: plan.units(),
            peak_live_values: store.peak_values,
            peak_live_bytes: store.peak_bytes,
            elapsed: start.elapsed(),
        };
        Ok((values, stats))
    }
}

impl Compute for Synchronous {
    fn compute(&self, graph: Graph, outputs: &[Key]) -> Result<Vec<Value>, Error> {
        let result = self.run(&graph, outputs).map(|(v, _)| v);
        if graph.len() > crate::drop_later::DEFER_ABOVE_TASKS {
            crate::drop_later::drop_later(graph);
        }
        result
    }

    fn name(&self) -> &'static str {
        "synchronous"
    }
}

/// Results by plan index, each dropped after its last read.
struct Store {
    values: Vec<Option<Value>>,
    uses_left: Vec<u32>,
    live_values: usize,
    live_bytes: usize,
    peak_values: usize,
    peak_bytes: usize,
}

impl Store {
    fn new(plan: &Plan) -> Store {
        Store {
            values: vec![None; plan.len()],
            uses_left: (0..plan.len() as u32).map(|i| plan.uses(i)).collect(),
            live_values: 0,
            live_bytes: 0,
            peak_values: 0,
            peak_bytes: 0,
        }
    }

    fn put(&mut self, _plan: &Plan, i: u32, v: Value) {
        self.live_values += 1;
        self.live_bytes += v.nbytes();
        self.peak_values = self.peak_values.max(self.live_values);
        self.peak_bytes = self.peak_bytes.max(self.live_bytes);
        self.values[i as usize] = Some(v);
    }

    /// One read of result `i`: the last read moves it out.
    fn read(&mut self, i: u32) -> Value {
        let left = &mut self.uses_left[i as usize];
        *left -= 1;
        if *left == 0 {
            let v = self.values[i as usize]
                .take()
                .expect("read after the last use");
            self.live_values -= 1;
            self.live_bytes -= v.nbytes();
            v
        } else {
            self.values[i as usize]
                .clone()
                .expect("read before it was computed")
        }
    }

    fn gather(&mut self, graph: &Graph, plan: &Plan, i: u32) -> DepValues {
        let mut deps = DepValues::new();
        for &d in plan.deps(i) {
            deps.push(*graph.key_at(plan.graph_position(d)), self.read(d));
        }
        deps
    }
}
