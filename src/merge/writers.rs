//! Random causal histories for the rule's tests: three devices that write in turn and now and
//! then hear from one another (each device's clock and highest Lamport time seen).

/// Per device 1..=3 (index 0 unused): the highest seq it has seen of each device, and the
/// highest Lamport time.
#[derive(Default)]
pub struct Writers {
    pub known: [[u64; 4]; 4],
    lamport: [[u64; 4]; 4],
}

impl Writers {
    /// The next writer, after it heard from another device (one time in `hear_one_in`): its
    /// number, and the seq and Lamport time of its next op. `next(n)` draws from 0..n.
    pub fn next_op(
        &mut self,
        next: &mut impl FnMut(u64) -> u64,
        hear_one_in: u64,
    ) -> (usize, u64, u64) {
        let d = 1 + next(3) as usize;
        if next(hear_one_in) == 0 {
            let from = 1 + next(3) as usize;
            for x in 1..4 {
                self.known[d][x] = self.known[d][x].max(self.known[from][x]);
                self.lamport[d][x] = self.lamport[d][x].max(self.lamport[from][x]);
            }
        }
        let seq = self.known[d][d] + 1;
        let time = 1 + self.lamport[d].iter().max().expect("four entries");
        (d, seq, time)
    }

    /// Records that device `d` wrote op `seq` at Lamport time `time`.
    pub fn wrote(&mut self, d: usize, seq: u64, time: u64) {
        self.known[d][d] = seq;
        self.lamport[d][d] = time;
    }
}
