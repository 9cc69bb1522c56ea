// CPU time and memory of processes and cores, read from Linux /proc. The headline figure of a load run
// (CPU microseconds per request of the proxy alone) is the difference of two ProcessCpu readings over
// the measured window. Parsers are pure functions of the file text so they are unit-tested.

import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/** CPU time of one process (all its threads), in clock ticks. */
export interface ProcessCpuTicks {
  pid: number;
  ppid: number;
  userTicks: number;
  systemTicks: number;
}

/**
 * Parses /proc/PID/stat. The command name (field 2) is in parentheses and may itself contain spaces and
 * parentheses, so fields are counted from the last ')'.
 */
export function parseProcStat(text: string): ProcessCpuTicks {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error(`malformed /proc/PID/stat: ${text.slice(0, 80)}`);
  const pid = Number(text.slice(0, open).trim());
  // After ") ": field 3 (state) is index 0, so field N is index N - 3.
  const fields = text.slice(close + 2).trim().split(/\s+/);
  const field = (n: number): number => {
    const value = Number(fields[n - 3]);
    if (!Number.isFinite(value)) throw new Error(`malformed /proc/PID/stat field ${n}: ${text.slice(0, 80)}`);
    return value;
  };
  return { pid, ppid: field(4), userTicks: field(14), systemTicks: field(15) };
}

/** VmRSS from /proc/PID/status, in bytes. */
export function parseVmRssBytes(statusText: string): number {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(statusText);
  if (!match) throw new Error('no VmRSS line in /proc/PID/status (process is a zombie or a kernel thread?)');
  return Number(match[1]) * 1024;
}

/** rchar from /proc/PID/io: bytes the process got from read()-family calls (wrk reads its sockets with read()). */
export function parseIoReadChars(ioText: string): number {
  const match = /^rchar:\s+(\d+)/m.exec(ioText);
  if (!match) throw new Error('no rchar line in /proc/PID/io');
  return Number(match[1]);
}

export function readIoReadChars(pid: number): number {
  return parseIoReadChars(readFileSync(`/proc/${pid}/io`, 'utf8'));
}

/** Busy and idle clock ticks of one logical CPU. */
export interface CoreTicks {
  busy: number;
  idle: number;
}

/** Parses the per-CPU lines ("cpu0 ...") of /proc/stat; index = CPU number. */
export function parseCoreTicks(procStatText: string): CoreTicks[] {
  const cores: CoreTicks[] = [];
  for (const line of procStatText.split('\n')) {
    const match = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!match) continue;
    // user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is already in user.
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = match[2]!.trim().split(/\s+/).map(Number);
    cores[Number(match[1])] = { busy: user + nice + system + irq + softirq + steal, idle: idle + iowait };
  }
  return cores;
}

/** Share of a core that was busy between two readings, 0..1. */
export function coreBusyFraction(before: CoreTicks, after: CoreTicks): number {
  const busy = after.busy - before.busy;
  const total = busy + (after.idle - before.idle);
  return total > 0 ? busy / total : 0;
}

let cachedClockTicksPerSecond: number | undefined;

/** USER_HZ, the unit of /proc CPU times (100 on practically every Linux). */
export function clockTicksPerSecond(): number {
  if (cachedClockTicksPerSecond === undefined) {
    try {
      cachedClockTicksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      cachedClockTicksPerSecond = 100;
    }
  }
  return cachedClockTicksPerSecond;
}

export function readProcessCpu(pid: number): ProcessCpuTicks {
  return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

export function readRssBytes(pid: number): number {
  return parseVmRssBytes(readFileSync(`/proc/${pid}/status`, 'utf8'));
}

export function readCoreTicks(): CoreTicks[] {
  return parseCoreTicks(readFileSync('/proc/stat', 'utf8'));
}

/**
 * The pid and all its descendants. nginx is a master plus a worker process; Lobby is one process
 * whose worker threads are already counted in its own /proc/PID/stat.
 */
export function processTree(rootPid: number): number[] {
  const childrenOf = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: ProcessCpuTicks;
    try {
      stat = readProcessCpu(Number(entry));
    } catch {
      continue; // the process exited while we were listing
    }
    const siblings = childrenOf.get(stat.ppid) ?? [];
    siblings.push(stat.pid);
    childrenOf.set(stat.ppid, siblings);
  }
  const tree: number[] = [];
  const pending = [rootPid];
  while (pending.length > 0) {
    const pid = pending.pop()!;
    tree.push(pid);
    pending.push(...(childrenOf.get(pid) ?? []));
  }
  return tree;
}

/** User and system CPU of a set of processes, in microseconds. */
export interface CpuMicros {
  userUs: number;
  systemUs: number;
}

/** The summed CPU time of `stats` in microseconds, at `ticksPerSecond` (USER_HZ) clock ticks per second. */
export function cpuMicros(stats: readonly ProcessCpuTicks[], ticksPerSecond: number): CpuMicros {
  let userTicks = 0;
  let systemTicks = 0;
  for (const stat of stats) {
    userTicks += stat.userTicks;
    systemTicks += stat.systemTicks;
  }
  const microsPerTick = 1e6 / ticksPerSecond;
  return { userUs: userTicks * microsPerTick, systemUs: systemTicks * microsPerTick };
}

export function sumCpuMicros(pids: readonly number[]): CpuMicros {
  return cpuMicros(pids.map(readProcessCpu), clockTicksPerSecond());
}

export function sumRssBytes(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) total += readRssBytes(pid);
  return total;
}
