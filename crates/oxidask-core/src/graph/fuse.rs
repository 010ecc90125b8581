//! Graph-level linear fusion: chains become single [`TaskSpec::Fused`] tasks.
//!
//! The local schedulers fuse inside their plan and never build these; the rewritten graph is
//! for schedulers that ship tasks elsewhere (one message per chain instead of per task) and
//! for pictures of what will actually run.

use super::{Graph, Plan, PlanOptions};
use crate::error::GraphError;
use crate::key::Key;
use crate::task::{Task, TaskSpec};

pub(super) fn fuse_linear(graph: &Graph, outputs: &[Key]) -> Result<Graph, GraphError> {
    let plan = Plan::build(graph, outputs, PlanOptions::default())?;
    let mut out = Graph::with_capacity(plan.units());
    for i in 0..plan.len() as u32 {
        if plan.is_fused_into_prev(i) {
            continue;
        }
        let pos = plan.graph_position(i);
        if plan.fused_next(i).is_none() {
            out.insert(*graph.key_at(pos), graph.task_at(pos).clone());
            continue;
        }
        let mut steps: Vec<(Key, TaskSpec)> = Vec::new();
        let mut cur = Some(i);
        while let Some(c) = cur {
            let p = plan.graph_position(c);
            let spec = graph.task_at(p).spec();
            match spec {
                // Nested fused tasks are flattened so a chain stays one flat list of steps.
                TaskSpec::Fused { steps: inner } => steps.extend(inner.iter().cloned()),
                other => steps.push((*graph.key_at(p), other.clone())),
            }
            cur = plan.fused_next(c);
        }
        let last = steps.last().expect("a chain has steps").0;
        out.insert(last, Task::from_spec(TaskSpec::Fused { steps }));
    }
    Ok(out)
}
