import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { clockTicksPerSecond, coreBusyFraction, cpuMicros, parseCoreTicks, parseProcStat, parseVmRssBytes, processTree, readProcessCpu, sumCpuMicros } from '../../loadtest/proc-stat.js';

// A real line with a command name containing a space and a ')': fields must be counted from the last ')'.
const STAT_LINE = '4242 (nginx: a) b) S 4241 4242 4242 0 -1 4194624 1234 0 0 0 731 2950 0 0 20 0 1 0 12345 12345678 3584 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n';

describe('loadtest /proc parsing', () => {
  it('reads pid, ppid, utime and stime from /proc/PID/stat', () => {
    assert.deepEqual(parseProcStat(STAT_LINE), { pid: 4242, ppid: 4241, userTicks: 731, systemTicks: 2950 });
  });

  it('turns the utime and stime ticks of a process tree into microseconds at CLK_TCK', () => {
    const master = parseProcStat(STAT_LINE); // 731 user, 2950 system ticks
    const worker = { pid: 4243, ppid: 4242, userTicks: 19, systemTicks: 50 };
    assert.deepEqual(cpuMicros([master, worker], 100), { userUs: 7_500_000, systemUs: 30_000_000 });
    assert.deepEqual(cpuMicros([master], 250), { userUs: 2_924_000, systemUs: 11_800_000 });
    assert.deepEqual(cpuMicros([], 100), { userUs: 0, systemUs: 0 });
  });

  it('rejects malformed stat text', () => {
    assert.throws(() => parseProcStat('garbage'), /malformed/);
  });

  it('reads VmRSS in bytes from /proc/PID/status', () => {
    const status = 'Name:\tnode\nVmPeak:\t  999999 kB\nVmRSS:\t   61440 kB\nRssAnon:\t 40000 kB\n';
    assert.equal(parseVmRssBytes(status), 61440 * 1024);
    assert.throws(() => parseVmRssBytes('Name:\tkthreadd\n'), /no VmRSS/);
  });

  it('parses per-core ticks from /proc/stat and computes the busy share', () => {
    const before = parseCoreTicks('cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 0 5 50 0 0 0 0 0 0\ncpu1 100 1 50 1000 9 2 3 0 0 0\nintr 1 2 3\n');
    const after = parseCoreTicks('cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 55 0 5 100 0 0 0 0 0 0\ncpu1 130 1 60 1010 9 2 3 0 0 0\nintr 1 2 3\n');
    assert.equal(before.length, 2);
    assert.deepEqual(before[1], { busy: 100 + 1 + 50 + 2 + 3, idle: 1000 + 9 });
    assert.equal(coreBusyFraction(before[0]!, after[0]!), 0.5); // 50 busy, 50 idle
    assert.equal(coreBusyFraction(before[1]!, after[1]!), 40 / 50);
    assert.equal(coreBusyFraction(before[1]!, before[1]!), 0);
  });

  it('reads this very process', () => {
    const self = readProcessCpu(process.pid);
    assert.equal(self.pid, process.pid);
    assert.equal(self.ppid, process.ppid);
    assert.ok(processTree(process.pid).includes(process.pid));
    const cpu = sumCpuMicros([process.pid]);
    assert.ok(cpu.userUs + cpu.systemUs > 0, 'starting Node and this test took CPU time');
    const microsPerTick = 1e6 / clockTicksPerSecond();
    assert.equal(Math.round(cpu.userUs / microsPerTick) * microsPerTick, cpu.userUs, 'whole clock ticks');
  });
});
