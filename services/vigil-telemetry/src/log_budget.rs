//! A budget for log lines about one recurring thing (a flood of
//! connections, junk from a broker): a few lines a minute, and how many
//! were left out, so an attacker cannot fill the log and an operator still
//! sees that it happens.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most a few lines a minute about one thing, and how many were left
/// out: a flood of connections is one line, not one per connection.
#[derive(Debug)]
pub struct LogBudget {
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    window: Option<Instant>,
    used: u32,
    suppressed: u64,
}

/// Lines per window.
const LOG_BURST: u32 = 5;
const LOG_WINDOW: Duration = Duration::from_secs(60);

impl Default for LogBudget {
    fn default() -> LogBudget {
        LogBudget::new()
    }
}

impl LogBudget {
    pub fn new() -> LogBudget {
        LogBudget {
            state: Mutex::new(BudgetState::default()),
        }
    }

    /// `Some(n)` if this line may be written, `n` being the lines left out
    /// since the last one written; `None` if it must be left out.
    pub fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.window.is_none_or(|w| now.duration_since(w) >= LOG_WINDOW) {
            s.window = Some(now);
            s.used = 0;
        }
        if s.used < LOG_BURST {
            s.used += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_budget_lets_a_few_lines_through_and_counts_the_rest() {
        let budget = LogBudget::new();
        for _ in 0..LOG_BURST {
            assert_eq!(budget.allow(), Some(0));
        }
        for _ in 0..100 {
            assert_eq!(budget.allow(), None);
        }
    }
}
