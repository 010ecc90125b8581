//! The dense execution plan: culled, checked, ordered and (optionally) fused.
//!
//! One iterative depth-first pass from the requested keys does everything: it visits only
//! what the outputs need (cull), reports dangling references and cycles with the keys
//! involved, and numbers tasks in post-order. That number is the task's static priority:
//! dependencies come before dependents, and one branch is finished before the next is
//! started, so a single thread running tasks in plan order holds as few intermediate results
//! as a depth-first evaluation does (the spirit of `dask.order`).
//!
//! # Invariants
//! - Plan index == priority; every dependency of task `i` has an index `< i`.
//! - `deps(i)` are distinct; `dependents(i)` are sorted ascending.
//! - `uses(i)` = number of dependents + number of times `i` was requested: the number of
//!   reads after which its result can be dropped.
//! - If `fused_next(i) == Some(j)` then `dependents(i) == [j]`, `deps(j) == [i]` and `i` is
//!   not an output: `j` runs right after `i` on the same thread with `i`'s value handed over.

use super::Graph;
use crate::error::GraphError;
use crate::key::Key;

const UNVISITED: u32 = u32::MAX;
const ON_STACK: u32 = u32::MAX - 1;
const NONE: u32 = u32::MAX;
/// The most tasks one plan can index (two values of `u32` are reserved as markers).
const MAX_TASKS: usize = (u32::MAX - 2) as usize;

/// Options for building a plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Fuse linear chains (run each chain as one unit of work).
    pub fuse: bool,
    /// Treat references to keys outside the graph as already computed elsewhere (results a
    /// distributed cluster holds) instead of as errors; they are left out of the plan.
    pub external_ok: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            fuse: true,
            external_ok: false,
        }
    }
}

/// A culled, ordered, dense view of a graph for one computation.
#[derive(Debug, Clone)]
pub struct Plan {
    nodes: Vec<u32>,
    dep_start: Vec<u32>,
    deps: Vec<u32>,
    dependent_start: Vec<u32>,
    dependents: Vec<u32>,
    uses: Vec<u32>,
    outputs: Vec<u32>,
    fused_next: Vec<u32>,
    fused_into_prev: Vec<bool>,
}

struct Frame {
    pos: u32,
    begin: u32,
    cursor: u32,
    end: u32,
}

impl Plan {
    /// Builds the plan for `outputs` over `graph`.
    pub fn build(graph: &Graph, outputs: &[Key], options: PlanOptions) -> Result<Plan, GraphError> {
        if graph.len() > MAX_TASKS {
            return Err(GraphError::TooLarge {
                tasks: graph.len(),
                max: MAX_TASKS,
            });
        }
        let mut state = vec![UNVISITED; graph.len()];
        let mut nodes: Vec<u32> = Vec::new();
        let mut dep_start: Vec<u32> = vec![0];
        let mut deps: Vec<u32> = Vec::new();
        let mut scratch: Vec<u32> = Vec::new();
        let mut marks: Vec<u32> = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut out_pos = Vec::with_capacity(outputs.len());

        let mut hint = 0u32;
        for key in outputs {
            let root = graph
                .position_hinted(key, [hint, hint.wrapping_add(1)])
                .ok_or(GraphError::MissingKey { key: *key })?;
            hint = root.wrapping_add(1);
            out_pos.push(root);
            if state[root as usize] != UNVISITED {
                continue;
            }
            open(
                graph,
                root,
                &mut state,
                &mut scratch,
                &mut marks,
                &mut stack,
                options.external_ok,
            )?;
            while let Some(top) = stack.last_mut() {
                if top.cursor < top.end {
                    let d = scratch[top.cursor as usize];
                    top.cursor += 1;
                    match state[d as usize] {
                        UNVISITED => open(
                            graph,
                            d,
                            &mut state,
                            &mut scratch,
                            &mut marks,
                            &mut stack,
                            options.external_ok,
                        )?,
                        ON_STACK => return Err(cycle(graph, &stack, d)),
                        _ => {}
                    }
                } else {
                    let frame = stack.pop().expect("non-empty");
                    let idx = nodes.len() as u32;
                    nodes.push(frame.pos);
                    state[frame.pos as usize] = idx;
                    for &d in &scratch[frame.begin as usize..frame.end as usize] {
                        deps.push(state[d as usize]);
                    }
                    dep_start.push(deps.len() as u32);
                    scratch.truncate(frame.begin as usize);
                }
            }
        }

        let n = nodes.len();
        let mut counts = vec![0u32; n + 1];
        for &d in &deps {
            counts[d as usize + 1] += 1;
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let dependent_start = counts.clone();
        let mut fill = counts;
        let mut dependents = vec![0u32; deps.len()];
        for i in 0..n {
            for &d in &deps[dep_start[i] as usize..dep_start[i + 1] as usize] {
                dependents[fill[d as usize] as usize] = i as u32;
                fill[d as usize] += 1;
            }
        }
        let mut uses: Vec<u32> = (0..n)
            .map(|i| dependent_start[i + 1] - dependent_start[i])
            .collect();
        let outputs: Vec<u32> = out_pos.iter().map(|&p| state[p as usize]).collect();
        for &o in &outputs {
            uses[o as usize] += 1;
        }

        let mut plan = Plan {
            nodes,
            dep_start,
            deps,
            dependent_start,
            dependents,
            uses,
            outputs,
            fused_next: vec![NONE; n],
            fused_into_prev: vec![false; n],
        };
        if options.fuse {
            plan.fuse_chains();
        }
        Ok(plan)
    }

    fn fuse_chains(&mut self) {
        for i in 0..self.nodes.len() {
            let ds = self.dependents(i as u32);
            if ds.len() != 1 || self.uses[i] != 1 {
                continue; // several readers, or requested as an output
            }
            let j = ds[0];
            if self.deps(j).len() == 1 {
                self.fused_next[i] = j;
                self.fused_into_prev[j as usize] = true;
            }
        }
    }

    /// The number of tasks.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The graph position of plan task `i`.
    #[inline]
    pub fn graph_position(&self, i: u32) -> u32 {
        self.nodes[i as usize]
    }

    /// The distinct dependencies of task `i` (plan indices).
    #[inline]
    pub fn deps(&self, i: u32) -> &[u32] {
        &self.deps[self.dep_start[i as usize] as usize..self.dep_start[i as usize + 1] as usize]
    }

    /// The tasks that depend on task `i`, ascending.
    #[inline]
    pub fn dependents(&self, i: u32) -> &[u32] {
        &self.dependents[self.dependent_start[i as usize] as usize
            ..self.dependent_start[i as usize + 1] as usize]
    }

    /// How many reads of task `i`'s result will happen (dependents plus output requests).
    #[inline]
    pub fn uses(&self, i: u32) -> u32 {
        self.uses[i as usize]
    }

    /// The plan index of each requested key, in request order (repeats allowed).
    pub fn outputs(&self) -> &[u32] {
        &self.outputs
    }

    /// The task fused to run right after `i`, if any.
    #[inline]
    pub fn fused_next(&self, i: u32) -> Option<u32> {
        match self.fused_next[i as usize] {
            NONE => None,
            j => Some(j),
        }
    }

    /// True if task `i` runs as part of its only dependency's chain, never on its own.
    #[inline]
    pub fn is_fused_into_prev(&self, i: u32) -> bool {
        self.fused_into_prev[i as usize]
    }

    /// Tasks with no dependencies, in priority order: where execution starts.
    pub fn roots(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.nodes.len() as u32).filter(|&i| self.deps(i).is_empty())
    }

    /// The number of tasks that run on their own (not as a later step of a fused chain).
    pub fn units(&self) -> usize {
        self.fused_into_prev.iter().filter(|f| !**f).count()
    }
}

/// Dependencies deduplicated by a scan of those found so far; more use `marks`.
const SCAN_DEPS: usize = 16;

/// Starts visiting `pos`: marks it, gathers its distinct dependencies into `scratch`.
///
/// `marks` (allocated the first time a task has many dependencies) remembers, per graph
/// position, the last task that listed it (`pos + 1`), so wide tasks dedupe in linear time.
fn open(
    graph: &Graph,
    pos: u32,
    state: &mut [u32],
    scratch: &mut Vec<u32>,
    marks: &mut Vec<u32>,
    stack: &mut Vec<Frame>,
    external_ok: bool,
) -> Result<(), GraphError> {
    state[pos as usize] = ON_STACK;
    let begin = scratch.len();
    let mut missing = None;
    let mut hint = pos.wrapping_sub(1);
    graph.task_at(pos).for_each_dependency(|k| {
        if missing.is_some() {
            return;
        }
        let found = graph.position_hinted(k, [hint, hint.wrapping_add(1)]);
        if let Some(d) = found {
            hint = d.wrapping_add(1);
        }
        match found {
            Some(d) => {
                let found = scratch.len() - begin;
                if found < SCAN_DEPS {
                    if !scratch[begin..].contains(&d) {
                        scratch.push(d);
                    }
                } else {
                    if found == SCAN_DEPS {
                        if marks.is_empty() {
                            marks.resize(graph.len(), 0);
                        }
                        for &s in &scratch[begin..] {
                            marks[s as usize] = pos + 1;
                        }
                    }
                    if marks[d as usize] != pos + 1 {
                        marks[d as usize] = pos + 1;
                        scratch.push(d);
                    }
                }
            }
            None if external_ok => {}
            None => missing = Some(*k),
        }
    });
    if let Some(dependency) = missing {
        return Err(GraphError::MissingDependency {
            key: *graph.key_at(pos),
            dependency,
        });
    }
    stack.push(Frame {
        pos,
        begin: begin as u32,
        cursor: begin as u32,
        end: scratch.len() as u32,
    });
    Ok(())
}

/// The cycle through `d`, which is on the DFS stack.
fn cycle(graph: &Graph, stack: &[Frame], d: u32) -> GraphError {
    let start = stack
        .iter()
        .position(|f| f.pos == d)
        .expect("a node on the stack has a frame");
    let mut keys: Vec<Key> = stack[start..]
        .iter()
        .map(|f| *graph.key_at(f.pos))
        .collect();
    keys.push(*graph.key_at(d));
    GraphError::Cycle { keys }
}
