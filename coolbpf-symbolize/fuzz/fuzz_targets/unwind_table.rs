//! Arbitrary bytes as an ELF file's CFI: compiling its unwind table, encoding it for BPF,
//! and looking pcs up must never panic or hang, and whatever comes out is well-formed:
//! rows strictly sorted, a lookup never answers with a no-info row, and the compact rows
//! decode back to rules the table has.

#![no_main]

use coolbpf_symbolize::unwind::{CfaRule, UnwindTable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(table) = UnwindTable::from_bytes(data) else {
        return;
    };
    let rows = table.rows();
    assert!(rows.windows(2).all(|w| w[0].pc < w[1].pc), "rows sorted");
    assert!(rows.last().is_none_or(|r| r.cfa == CfaRule::NoInfo), "closed by no-info");
    for row in rows.iter().take(256) {
        for pc in [row.pc, row.pc.wrapping_sub(1), row.pc.wrapping_add(1)] {
            if let Some(found) = table.lookup(pc) {
                assert_ne!(found.cfa, CfaRule::NoInfo);
                assert!(found.pc <= pc);
            }
        }
    }
    if let Ok(compact) = table.compact() {
        assert!(compact.rows.len() <= rows.len());
        for row in compact.rows.iter().take(256) {
            let decoded = row.decode(compact.base);
            assert!(decoded.pc >= compact.base);
        }
    }
});
