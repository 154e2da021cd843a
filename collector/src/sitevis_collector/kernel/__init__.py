"""The kernel side, seen from Python: the BPF program compiled in a child (compiler),
its maps read through bpf(2) (bpfsys, maps, ringbuf), the contract with the C types
(structs, layout), and the drain that turns one epoch into a DrainResult."""
