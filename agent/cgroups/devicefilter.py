"""The cgroup v2 device allow-list as an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE).

cgroup v2 has no devices.allow file: the kernel asks every BPF_CGROUP_DEVICE
program attached to the process's group (and its ancestors) whether an access is
allowed. The program gets a `struct bpf_cgroup_dev_ctx`

    u32 access_type;   /* (access << 16) | type;  type: 1 block, 2 char;
                          access: 1 mknod, 2 read, 4 write */
    u32 major;
    u32 minor;

and returns 1 (allow) or 0 (deny). `program()` generates it the way runc's
libcontainer/cgroups/devices/devicefilter does: a prologue loads type, access,
major and minor into R2..R5; each rule is a block that jumps to the next block
on the first mismatch and otherwise returns 1; the epilogue returns 0.

    R2 = ctx->access_type & 0xffff      R3 = ctx->access_type >> 16
    R4 = ctx->major                     R5 = ctx->minor
    rule "c 136:* rw":  if R2 != 2 goto next; R1 = R3 & 6; if R1 != R3 goto next;
                        if R4 != 136 goto next; R0 = 1; exit
    next: ...           R0 = 0; exit

The result is the raw instruction bytes (8 bytes each, struct bpf_insn) that
bpf.py loads with bpf(BPF_PROG_LOAD) and attaches to the container's cgroup.
"""

from __future__ import annotations

import struct

from agent.cgroups.devices import WILDCARD, DeviceRule

# struct bpf_cgroup_dev_ctx field offsets and its constants (<linux/bpf.h>)
_ACCESS_TYPE, _MAJOR, _MINOR = 0, 4, 8
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4

# opcodes: class | size/op | source
_LDX_MEM_W = 0x01 | 0x60 | 0x00          # BPF_LDX | BPF_MEM | BPF_W
_ALU32_AND_K = 0x04 | 0x50 | 0x00        # BPF_ALU | BPF_AND | BPF_K
_ALU32_RSH_K = 0x04 | 0x70 | 0x00        # BPF_ALU | BPF_RSH | BPF_K
_ALU32_MOV_K = 0x04 | 0xB0 | 0x00        # BPF_ALU | BPF_MOV | BPF_K
_ALU32_MOV_X = 0x04 | 0xB0 | 0x08        # BPF_ALU | BPF_MOV | BPF_X
_JMP_JNE_K = 0x05 | 0x50 | 0x00          # BPF_JMP | BPF_JNE | BPF_K
_JMP_JNE_X = 0x05 | 0x50 | 0x08          # BPF_JMP | BPF_JNE | BPF_X
_JMP_EXIT = 0x05 | 0x90                  # BPF_JMP | BPF_EXIT

R0, R1, R2, R3, R4, R5 = range(6)


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn: u8 code, u8 dst:4|src:4 (little-endian bitfields), s16 off, s32 imm."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _access_mask(access: str) -> int:
    return (ACC_MKNOD if "m" in access else 0) | (ACC_READ if "r" in access else 0) | \
        (ACC_WRITE if "w" in access else 0)


def _block(rule: DeviceRule) -> list[tuple]:
    """The instructions of one rule; a jump offset of None means "to the next block"."""
    out: list[tuple] = []
    if rule.type != "a":
        out.append((_JMP_JNE_K, R2, 0, None, DEV_BLOCK if rule.type == "b" else DEV_CHAR))
    mask = _access_mask(rule.access)
    if mask != ACC_MKNOD | ACC_READ | ACC_WRITE:
        out += [(_ALU32_MOV_X, R1, R3, 0, 0),
                (_ALU32_AND_K, R1, 0, 0, mask),
                (_JMP_JNE_X, R1, R3, None, 0)]
    if rule.major != WILDCARD:
        out.append((_JMP_JNE_K, R4, 0, None, rule.major))
    if rule.minor != WILDCARD:
        out.append((_JMP_JNE_K, R5, 0, None, rule.minor))
    out += [(_ALU32_MOV_K, R0, 0, 0, 1), (_JMP_EXIT, 0, 0, 0, 0)]
    return out


def program(rules: list[DeviceRule] | tuple[DeviceRule, ...]) -> bytes:
    """The eBPF instructions allowing exactly `rules` (everything else denied)."""
    code = [insn(_LDX_MEM_W, R2, R1, _ACCESS_TYPE), insn(_ALU32_AND_K, R2, imm=0xFFFF),
            insn(_LDX_MEM_W, R3, R1, _ACCESS_TYPE), insn(_ALU32_RSH_K, R3, imm=16),
            insn(_LDX_MEM_W, R4, R1, _MAJOR), insn(_LDX_MEM_W, R5, R1, _MINOR)]
    for rule in rules:
        block = _block(rule)
        for i, (op, dst, src, off, imm) in enumerate(block):
            # a mismatch skips the rest of this block: offsets count from the next instruction
            code.append(insn(op, dst, src, len(block) - i - 1 if off is None else off,
                             imm if imm < 2**31 else imm - 2**32))
    code += [insn(_ALU32_MOV_K, R0, imm=0), insn(_JMP_EXIT)]
    return b"".join(code)


def evaluate(prog: bytes, *, type: str, major: int, minor: int, access: str) -> bool:
    """Run a program made by `program()` on one access, in Python: only the
    instructions `program()` emits are understood. For tests and for reading a
    program back; the kernel runs the real thing."""
    ctx_type = DEV_BLOCK if type == "b" else DEV_CHAR
    ctx = {_ACCESS_TYPE: (_access_mask(access) << 16) | ctx_type, _MAJOR: major, _MINOR: minor}
    regs = [0] * 11
    pc = 0
    count = len(prog) // 8
    while pc < count:
        code, regs_byte, off, imm = struct.unpack_from("<BBhi", prog, pc * 8)
        dst, src = regs_byte & 0x0F, regs_byte >> 4
        pc += 1
        if code == _LDX_MEM_W:
            regs[dst] = ctx[off]
        elif code == _ALU32_AND_K:
            regs[dst] &= imm & 0xFFFFFFFF
        elif code == _ALU32_RSH_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == _ALU32_MOV_K:
            regs[dst] = imm & 0xFFFFFFFF
        elif code == _ALU32_MOV_X:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == _JMP_JNE_K:
            pc += off if regs[dst] != (imm & 0xFFFFFFFFFFFFFFFF if imm >= 0 else imm) else 0
        elif code == _JMP_JNE_X:
            pc += off if regs[dst] != regs[src] else 0
        elif code == _JMP_EXIT:
            return regs[R0] == 1
        else:
            raise ValueError(f"instruction {pc - 1}: opcode {code:#x} is not one program() emits")
    raise ValueError("program ran off its end")
