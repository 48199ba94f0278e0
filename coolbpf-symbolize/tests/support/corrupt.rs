//! Files with their debug information and symbol tables damaged: the symbolizer must
//! answer (anything) or fail, never panic.

use std::path::Path;

use coolbpf_symbolize::{Source, Symbolizer};

/// Damages `target` `rounds` times (a few bytes flipped in one of its debug sections or
/// symbol tables in turn, and every tenth time the file cut short too) and symbolizes
/// `addrs` of `binary` after each: `target` is the binary itself, or a file it reads
/// (a `.dwo`, a `.dwp`, a dwz supplementary file). `target` is restored afterwards.
pub fn corrupt_and_symbolize(target: &Path, binary: &Path, addrs: &[u64], rounds: usize) {
    use object::{Object, ObjectSection};
    let original = std::fs::read(target).unwrap();
    let sections: Vec<(usize, usize)> = {
        let object = object::File::parse(&*original).unwrap();
        object
            .sections()
            .filter(|s| {
                s.name()
                    .is_ok_and(|n| n.starts_with(".debug") || n.ends_with("tab"))
            })
            .filter_map(|s| s.file_range())
            .map(|(offset, size)| (offset as usize, size as usize))
            .filter(|&(_, size)| size > 0)
            .collect()
    };
    assert!(
        sections.len() >= 4,
        "{}: debug sections expected",
        target.display()
    );
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..rounds {
        let mut bytes = original.clone();
        let (offset, size) = sections[round % sections.len()];
        for _ in 0..=random() % 8 {
            let at = offset + (random() as usize % size);
            bytes[at] = if random() % 2 == 0 {
                random() as u8
            } else {
                0xff
            };
        }
        if round % 10 == 9 {
            bytes.truncate(random() as usize % original.len());
        }
        std::fs::write(target, &bytes).unwrap();
        // Any answer will do, as long as there is one.
        let _ = Symbolizer::new().symbolize(&Source::elf(binary), addrs);
    }
    std::fs::write(target, &original).unwrap();
}
