/**
 * Helpers for the packaging tests: a clean clone of the repository (committed
 * files only), a command started until it logs "listening", and the README's
 * code blocks, so the tests run what the README tells people to run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { ROOT } from './proxy.js'

/** The user the tests run "non-root" processes as. */
export const NOBODY = { uid: 65534, gid: 65534 }

/** PATH with the running node first, so `npm`, `npx` and `#!/usr/bin/env node` scripts use it (Node 24 in the CI smoke run). */
export function pathWithThisNode (): string {
  return `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`
}

/**
 * A command without tap's per-process hooks and coverage: tap adds
 * NODE_OPTIONS (its loaders) to every child and NODE_V8_COVERAGE is
 * inherited, which would slow npm and tsc down and collect coverage of files
 * outside this checkout. Used for the tools and for code run from a clone or
 * an installed package.
 */
export function untracked (cmd: string[]): string[] {
  return ['env', '-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE', ...cmd]
}

/** npm settings that keep repeated installs off the network where the cache has the packages. */
export const NPM_QUIET_ENV: NodeJS.ProcessEnv = {
  npm_config_prefer_offline: 'true',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false'
}

/** `git clone` of this checkout's HEAD: what a new user (or CI) gets, without uncommitted or ignored files. */
export function cloneRepo (dest: string): string {
  const r = spawnSync('git', ['clone', '--quiet', '--no-hardlinks', ROOT, dest], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`git clone failed: ${r.stderr}`)
  return dest
}

export interface Started {
  proc: ChildProcess
  url: string
  port: number
  /** stdout lines. */
  stdout: string[]
  stderr: string[]
  /** SIGTERM, then the exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

/** Spawns `cmd` and waits for the proxy's "listening" log line on stdout. */
export async function startUntilListening (cmd: string[], opts: { cwd: string, env: NodeJS.ProcessEnv, detached?: boolean, timeoutMs?: number }): Promise<Started> {
  const proc = spawn(cmd[0], cmd.slice(1), { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached })
  const stdout: string[] = []
  const stderr: string[] = []
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  const url = await new Promise<string>((resolve, reject) => {
    let buf = ''
    proc.stdout!.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8')
      let nl
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        stdout.push(line)
        if (line.includes('"msg":"listening"')) resolve((JSON.parse(line) as { url: string }).url)
      }
    })
    proc.stderr!.on('data', (c: Buffer) => stderr.push(...c.toString('utf8').split('\n').filter(Boolean)))
    proc.once('error', reject)
    proc.once('exit', (code) => reject(new Error(`${cmd.join(' ')} exited with ${code} before listening:\n${[...stdout, ...stderr].join('\n')}`)))
    setTimeout(() => reject(new Error(`${cmd.join(' ')} did not listen in time:\n${[...stdout, ...stderr].join('\n')}`)), opts.timeoutMs ?? 30_000).unref()
  })
  return {
    proc,
    url,
    port: Number(new URL(url).port),
    stdout,
    stderr,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) {
        if (opts.detached === true) process.kill(-proc.pid!, signal)
        else proc.kill(signal)
      }
      return await exited
    }
  }
}

/** The body of the README section titled `title` (up to the next heading of the same or a higher level). */
export function readmeSection (title: string, readme = readFileSync(join(ROOT, 'README.md'), 'utf8')): string {
  const lines = readme.split('\n')
  const start = lines.findIndex((l) => /^#+ /.test(l) && l.replace(/^#+ /, '').trim() === title)
  if (start === -1) throw new Error(`README has no section "${title}"`)
  const level = /^#+/.exec(lines[start])![0].length
  const end = lines.findIndex((l, i) => i > start && /^#+ /.test(l) && /^#+/.exec(l)![0].length <= level)
  return lines.slice(start + 1, end === -1 ? undefined : end).join('\n')
}

/** Shell command lines of the ```sh blocks in `text`, continuations joined, trailing comments dropped. */
export function shellLines (text: string): string[] {
  const out: string[] = []
  for (const block of text.matchAll(/```sh\n([\s\S]*?)```/g)) {
    let pending = ''
    for (const raw of block[1].split('\n')) {
      const line = raw.replace(/\s+#.*$/, '').replace(/^#.*$/, '')
      if (/\\\s*$/.test(line)) { pending += line.replace(/\\\s*$/, ' '); continue }
      const full = (pending + line).replace(/\s+/g, ' ').trim()
      pending = ''
      if (full !== '') out.push(full)
    }
  }
  return out
}

export interface DockerRun {
  env: Record<string, string>
  image: string
  /** What replaces CMD. */
  args: string[]
}

const DOCKER_RUN_VALUE_FLAGS = new Set(['-p', '--publish', '-v', '--volume', '-e', '--env', '--name', '--network', '--env-file', '-u', '--user', '--restart'])

/** Splits a `docker run [options] IMAGE [ARGS]` line (no quoting beyond plain words and 'single quotes'). */
export function parseDockerRun (line: string): DockerRun {
  const words = (line.match(/'[^']*'|\S+/g) ?? []).map((w) => w.replace(/^'(.*)'$/, '$1'))
  const at = words.indexOf('run')
  if (words[0] !== 'docker' || at !== 1) throw new Error(`not a docker run line: ${line}`)
  const env: Record<string, string> = {}
  let i = 2
  for (; i < words.length && words[i].startsWith('-'); i++) {
    if (!DOCKER_RUN_VALUE_FLAGS.has(words[i])) continue
    const value = words[++i]
    if (words[i - 1] === '-e' || words[i - 1] === '--env') {
      const eq = value.indexOf('=')
      env[value.slice(0, eq)] = value.slice(eq + 1)
    }
  }
  return { env, image: words[i], args: words.slice(i + 1) }
}
