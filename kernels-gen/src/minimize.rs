//! Minimizing a deterministic Mealy automaton by Moore's partition refinement.
//!
//! Two states are equivalent when every input sequence produces the same outputs from both.
//! The outputs of a transition are "allowed" and "stop". A transition is allowed iff it leads
//! to a live state or stops: a stop is terminal, so a stopping transition leads to the dead
//! state and is still allowed (see [`Mealy::allowed`]).
//! Refinement starts from the partition by each state's row of outputs and splits blocks by
//! the blocks of their successors until nothing changes. Moore's algorithm is O(n² k) in the
//! worst case against Hopcroft's O(n k log n); our automata have tens of states, and the
//! token-level pass runs over token *classes* (identical columns), so the simple algorithm is
//! the clear choice and each round is one hash of each state's row.

use std::collections::HashMap;

/// A complete deterministic automaton over inputs `0..inputs`, with outputs on transitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mealy {
    /// Number of inputs.
    pub inputs: usize,
    /// `next[s * inputs + a]`.
    pub next: Vec<u32>,
    /// `stop[s * inputs + a]`.
    pub stop: Vec<bool>,
    /// The dead state: every transition loops to it with no stop, nothing allowed. Stopping
    /// transitions lead to it too (a stop is terminal).
    pub dead: u32,
    /// The start state.
    pub start: u32,
}

impl Mealy {
    /// Number of states.
    pub fn len(&self) -> usize {
        self.next.len() / self.inputs
    }
    /// Whether there are no states (never, for a built automaton).
    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }
    /// Whether transition `i` (`s * inputs + a`) is allowed: it leads to a live state, or it
    /// stops (and then leads to the dead state).
    pub fn allowed(&self, i: usize) -> bool {
        self.next[i] != self.dead || self.stop[i]
    }
    /// The block of every state in the coarsest partition into equivalent states; blocks are
    /// numbered in order of their first state.
    pub fn equivalence_classes(&self) -> Vec<u32> {
        let n = self.len();
        let k = self.inputs;
        let mut block: Vec<u32> = {
            let mut ids: HashMap<Vec<u8>, u32> = HashMap::new();
            (0..n)
                .map(|s| {
                    let row: Vec<u8> = (0..k)
                        .map(|a| {
                            let i = s * k + a;
                            u8::from(self.allowed(i)) | (u8::from(self.stop[i]) << 1)
                        })
                        .collect();
                    let fresh = ids.len() as u32;
                    *ids.entry(row).or_insert(fresh)
                })
                .collect()
        };
        let mut count = block.iter().copied().max().map_or(0, |m| m + 1);
        loop {
            let mut ids: HashMap<Vec<u32>, u32> = HashMap::new();
            let refined: Vec<u32> = (0..n)
                .map(|s| {
                    let mut sig = Vec::with_capacity(k + 1);
                    sig.push(block[s]);
                    sig.extend((0..k).map(|a| block[self.next[s * k + a] as usize]));
                    let fresh = ids.len() as u32;
                    *ids.entry(sig).or_insert(fresh)
                })
                .collect();
            let new_count = ids.len() as u32;
            block = refined;
            if new_count == count {
                return block;
            }
            count = new_count;
        }
    }

    /// The minimal equivalent automaton restricted to the states reachable from the start,
    /// with states renumbered canonically: dead = 0, start = 1, then breadth-first order over
    /// inputs `0..k`. The same automaton always gives the same numbering.
    pub fn minimize(&self) -> Mealy {
        self.minimize_with_map().0
    }

    /// [`Mealy::minimize`], plus the new number of every old state (`u32::MAX` for states
    /// not reachable from the start).
    pub fn minimize_with_map(&self) -> (Mealy, Vec<u32>) {
        let block = self.equivalence_classes();
        let k = self.inputs;
        let blocks = block.iter().copied().max().map_or(0, |m| m + 1) as usize;
        // One representative per block.
        let mut rep = vec![u32::MAX; blocks];
        for (s, &b) in block.iter().enumerate() {
            if rep[b as usize] == u32::MAX {
                rep[b as usize] = s as u32;
            }
        }
        // Canonical numbering by breadth-first search over blocks.
        let mut order = vec![u32::MAX; blocks];
        let mut queue = Vec::with_capacity(blocks);
        let dead_b = block[self.dead as usize];
        order[dead_b as usize] = 0;
        queue.push(dead_b);
        let start_b = block[self.start as usize];
        if order[start_b as usize] == u32::MAX {
            order[start_b as usize] = queue.len() as u32;
            queue.push(start_b);
        }
        let mut head = 1;
        while head < queue.len() {
            let b = queue[head];
            head += 1;
            let s = rep[b as usize] as usize;
            for a in 0..k {
                let t = block[self.next[s * k + a] as usize];
                if order[t as usize] == u32::MAX {
                    order[t as usize] = queue.len() as u32;
                    queue.push(t);
                }
            }
        }
        let m = queue.len();
        let mut next = vec![0u32; m * k];
        let mut stop = vec![false; m * k];
        for (new, &b) in queue.iter().enumerate() {
            let s = rep[b as usize] as usize;
            for a in 0..k {
                next[new * k + a] = order[block[self.next[s * k + a] as usize] as usize];
                stop[new * k + a] = self.stop[s * k + a];
            }
        }
        let map = block.iter().map(|&b| order[b as usize]).collect();
        (
            Mealy {
                inputs: k,
                next,
                stop,
                dead: 0,
                start: order[start_b as usize],
            },
            map,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two copies of a two-state counter collapse into one, and an unreachable state goes.
    #[test]
    fn merges_equivalent_states_and_drops_unreachable() {
        // States: 0 dead, 1 start, 2 = copy of 1, 3 unreachable. Input 0 toggles 1<->2 with
        // no output; input 1 stops and stays.
        let k = 2;
        let next = vec![0, 0, 2, 1, 1, 2, 3, 3];
        let stop = vec![false, false, false, true, false, true, false, false];
        let m = Mealy {
            inputs: k,
            next,
            stop,
            dead: 0,
            start: 1,
        };
        let min = m.minimize();
        assert_eq!(min.len(), 2);
        assert_eq!(min.start, 1);
        assert_eq!(min.next, vec![0, 0, 1, 1]);
        assert_eq!(min.stop, vec![false, false, false, true]);
    }

    /// States that differ only many steps ahead stay apart.
    #[test]
    fn keeps_states_that_differ_later() {
        // A chain 1 -> 2 -> 3 -> 4 on input 0; only 4 stops on input 0. All are distinct.
        let k = 1;
        let next = vec![0, 2, 3, 4, 4];
        let stop = vec![false, false, false, false, true];
        let m = Mealy {
            inputs: k,
            next,
            stop,
            dead: 0,
            start: 1,
        };
        assert_eq!(m.minimize().len(), 5);
    }
}
