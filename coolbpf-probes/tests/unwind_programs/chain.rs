//! level1 -> ... -> level5 -> hot in Rust (unmangled names, so every tool spells them
//! alike), spinning in hot; each line on stdin runs the chain for argv[1] seconds. The
//! optimization barriers are empty `asm!` blocks, not `black_box`: an inlined std
//! function would be a frame of its own (from DWARF) below hot.

use std::arch::asm;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

#[no_mangle]
#[inline(never)]
pub extern "C" fn hot(seconds: f64) -> u64 {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut x: u64 = 1;
    while Instant::now() < end {
        for _ in 0..1_000_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // SAFETY: an empty asm block that only claims to read and write `x`.
            unsafe { asm!("/* {0} */", inout(reg) x) };
        }
    }
    x
}

macro_rules! level {
    ($name:ident, $callee:ident, $k:expr) => {
        #[no_mangle]
        #[inline(never)]
        pub extern "C" fn $name(seconds: f64) -> u64 {
            let mut r = $callee(seconds);
            // SAFETY: as in hot: the use after the call keeps it from being a tail call.
            unsafe { asm!("/* {0} */", inout(reg) r) };
            r.wrapping_add($k)
        }
    };
}

level!(level5, hot, 5);
level!(level4, level5, 4);
level!(level3, level4, 3);
level!(level2, level3, 2);
level!(level1, level2, 1);

fn main() {
    let seconds: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        if line.is_err() {
            break;
        }
        let mut r = level1(seconds);
        // SAFETY: as in hot.
        unsafe { asm!("/* {0} */", inout(reg) r) };
        let mut out = std::io::stdout();
        if out.write_all(b"done\n").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
}
