//! The lazy-binding PLT: the one DWARF expression worth recognizing, and PLT sections
//! that have no FDE at all.

use super::row::CfaRule;

/// The CFA expression GNU ld writes for `.plt`:
/// `DW_OP_breg7 (rsp) 8; DW_OP_breg16 (rip) 0; DW_OP_lit15; DW_OP_and; DW_OP_lit11;
/// DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus`, i.e. rsp + 8, plus 8 once the 16-byte
/// entry's `push` (ending at byte 11) has run.
const PLT_EXPRESSION: [u8; 11] = [
    0x77, 0x08, // DW_OP_breg7 8
    0x80, 0x00, // DW_OP_breg16 0
    0x3f, // DW_OP_lit15
    0x1a, // DW_OP_and
    0x3b, // DW_OP_lit11
    0x2a, // DW_OP_ge
    0x33, // DW_OP_lit3
    0x24, // DW_OP_shl
    0x22, // DW_OP_plus
];

/// Whether a CFA expression is the PLT's.
pub(crate) fn is_plt_expression(bytes: &[u8]) -> bool {
    bytes == PLT_EXPRESSION
}

/// The rule for a PLT section that no FDE covers (linked with
/// `--no-ld-generated-unwind-info`), by section name; `None` for other sections.
///
/// - `.plt`: lazy-binding entries (`jmp *GOT; push n; jmp PLT0`): the PLT rule. (PLT0
///   itself pushes twice; a sample there gets the entries' rule, one word short, and the
///   walk goes astray: PLT0 runs once per symbol resolved, so this is rare.)
/// - `.plt.sec` and `.plt.got`: a single indirect jump (after `endbr64` for IBT), which
///   leaves the stack as the call made it: CFA = rsp + 8.
pub(crate) fn uncovered_section_rule(name: &str) -> Option<CfaRule> {
    match name {
        ".plt" => Some(CfaRule::Plt),
        ".plt.sec" | ".plt.got" => Some(CfaRule::Rsp(8)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_plt_expression_is_recognized() {
        assert!(is_plt_expression(&PLT_EXPRESSION));
        let mut ibt = PLT_EXPRESSION;
        ibt[6] = 0x3a; // DW_OP_lit10
        assert!(!is_plt_expression(&ibt));
        assert!(!is_plt_expression(&PLT_EXPRESSION[..10]));
        assert_eq!(uncovered_section_rule(".plt"), Some(CfaRule::Plt));
        assert_eq!(uncovered_section_rule(".plt.sec"), Some(CfaRule::Rsp(8)));
        assert_eq!(uncovered_section_rule(".text"), None);
    }
}
