//! gimli's CFI rules, as far as this unwinder follows them on x86_64.

use gimli::{CfaRule as GimliCfa, Reader, Register, RegisterRule, UnwindSection, UnwindTableRow};

use super::plt::is_plt_expression;
use super::row::{CfaRule, RbpRule};

/// DWARF register numbers on x86_64 (System V psABI, figure 3.36).
const RBP: Register = Register(6);
const RSP: Register = Register(7);
const RETURN_ADDRESS: Register = Register(16);
/// Where the return address sits relative to the CFA: `call` pushed it last.
const RETURN_ADDRESS_OFFSET: i64 = -8;

/// The CFA and rbp rules of one gimli row.
pub(crate) fn convert<R, S>(row: &UnwindTableRow<R::Offset>, section: &S) -> (CfaRule, RbpRule)
where
    R: Reader,
    S: UnwindSection<R>,
{
    match row.register(RETURN_ADDRESS) {
        Some(RegisterRule::Undefined) => return (CfaRule::Undefined, RbpRule::Unchanged),
        Some(RegisterRule::Offset(RETURN_ADDRESS_OFFSET)) => {}
        // No rule, or the return address somewhere else: nothing to read it from.
        _ => return (CfaRule::Unsupported, RbpRule::Unsupported),
    }
    let cfa = match row.cfa() {
        GimliCfa::RegisterAndOffset { register, offset } => match *register {
            RSP => CfaRule::Rsp(*offset),
            RBP => CfaRule::Rbp(*offset),
            _ => CfaRule::Unsupported,
        },
        GimliCfa::Expression(expression) => {
            let plt = expression
                .get(section)
                .ok()
                .and_then(|e| e.0.to_slice().ok().map(|b| is_plt_expression(&b)));
            if plt == Some(true) {
                CfaRule::Plt
            } else {
                CfaRule::Unsupported
            }
        }
    };
    let rbp = match row.register(RBP) {
        // No rule: callee-saved, so the ABI's default holds: not modified. (An explicit
        // DW_CFA_undefined for rbp is read the same way, as readelf shows it.)
        None | Some(RegisterRule::SameValue | RegisterRule::Undefined) => RbpRule::Unchanged,
        Some(RegisterRule::Offset(offset)) => RbpRule::CfaOffset(offset),
        Some(_) => RbpRule::Unsupported,
    };
    (cfa, rbp)
}
