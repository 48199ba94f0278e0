// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "coolbpf/coolbpf.bpf.h"
char LICENSE[] SEC("license") = "Dual BSD/GPL";
