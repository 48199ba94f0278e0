/* A symbol in a section that is not loaded (no SHF_ALLOC), as glibc's link warnings
   (`__evoke_link_warning_*` in `.gnu.warning.*`) are: linked at address 0, where it
   would name the ELF header if it were taken for code. */
__asm__(".section .coolbpf.unloaded,\"\",@progbits\n"
        ".globl unloaded_marker\n"
        ".type unloaded_marker, @object\n"
        "unloaded_marker: .zero 256\n"
        ".size unloaded_marker, 256\n"
        ".previous\n");

int main(void) { return 0; }
