/**
 * Replays a Dockerfile without a Docker engine: each stage is a directory
 * standing for the container's root file system, COPY copies from the build
 * context (a fresh clone, so only committed files count) or from an earlier
 * stage, RUN runs in the stage's WORKDIR with the host's tools (the base
 * image's node is the host's node), ENV/USER/ENTRYPOINT/CMD/HEALTHCHECK are
 * recorded for starting the result. Anything it cannot replay faithfully (an
 * unknown instruction, an absolute path in RUN, a missing COPY source) is an
 * error, so a Dockerfile that cannot build fails the test that replays it.
 */
import { spawn } from 'node:child_process'
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { basename, join, posix } from 'node:path'

export interface Instruction {
  line: number
  op: string
  args: string
}

export interface Stage {
  name: string | null
  base: string
  /** Stands for the container's '/'. */
  dir: string
  workdir: string
  env: Record<string, string>
  user: string | null
  entrypoint: string[]
  cmd: string[]
  healthcheck: string[] | null
  volumes: string[]
  expose: string[]
  stopSignal: string | null
}

/** Joins continuation lines, drops comments and blank lines. */
export function parseDockerfile (text: string): Instruction[] {
  const out: Instruction[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const start = i
    let line = lines[i]
    if (/^\s*(#|$)/.test(line)) continue
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      line = line.replace(/\\\s*$/, '').trimEnd()
      i++
      // Comment lines inside a continued instruction are dropped, as Docker does.
      while (i + 1 < lines.length && /^\s*#/.test(lines[i])) i++
      line += ' ' + lines[i].trim()
    }
    const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(line)
    if (m === null) throw new Error(`Dockerfile line ${start + 1}: cannot parse "${line}"`)
    out.push({ line: start + 1, op: m[1].toUpperCase(), args: m[2].trim() })
  }
  return out
}

/** Exec form (a JSON array) or shell form (run by /bin/sh -c). */
function commandOf (args: string): string[] {
  if (args.startsWith('[')) return JSON.parse(args) as string[]
  return ['/bin/sh', '-c', args]
}

/** `A=1 B="two words"` or the legacy `A value`. */
export function parseEnv (args: string): Record<string, string> {
  const out: Record<string, string> = {}
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) {
    const [name, ...rest] = args.split(/\s+/)
    out[name] = rest.join(' ')
    return out
  }
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("((?:[^"\\]|\\.)*)"|'([^']*)'|(\S*))/g
  let m
  while ((m = re.exec(args)) !== null) out[m[1]] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : (m[4] ?? m[5])
  return out
}

/** Leading `--name=value` flags of COPY or HEALTHCHECK. */
function splitFlags (args: string): { flags: Record<string, string>, rest: string } {
  const flags: Record<string, string> = {}
  let rest = args
  let m
  while ((m = /^--([a-z-]+)=(\S+)\s+/.exec(rest)) !== null) {
    flags[m[1]] = m[2]
    rest = rest.slice(m[0].length)
  }
  return { flags, rest }
}

export interface ReplayOptions {
  /** The build context: a clean checkout. */
  context: string
  /** Where the stage directories are made. */
  root: string
  /** uid/gid that stand for any non-root user named in USER or --chown. */
  uid: number
  gid: number
  /** Extra environment for RUN (for example the npm cache settings). */
  runEnv?: NodeJS.ProcessEnv
  /** Called with each instruction as it is replayed. */
  log?: (message: string) => void
}

export async function runShell (cmd: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null, output: string }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (c: Buffer) => { output += c.toString('utf8') })
    child.stderr.on('data', (c: Buffer) => { output += c.toString('utf8') })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, output }))
  })
}

function chownTree (path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid)
  if (statSync(path).isDirectory()) for (const entry of readdirSync(path)) chownTree(join(path, entry), uid, gid)
}

/** Replays every stage; returns them in order (the last is the image). */
export async function replayDockerfile (text: string, opts: ReplayOptions): Promise<Stage[]> {
  const stages: Stage[] = []
  const log = opts.log ?? (() => {})
  const inStage = (stage: Stage, containerPath: string): string => join(stage.dir, posix.resolve(stage.workdir, containerPath))
  let current: Stage | undefined
  for (const ins of parseDockerfile(text)) {
    const where = `Dockerfile line ${ins.line} (${ins.op} ${ins.args})`
    if (ins.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)
      if (m === null) throw new Error(`${where}: cannot parse`)
      if (stages.some((s) => s.name === m[1])) throw new Error(`${where}: FROM an earlier stage is not replayed`)
      const dir = join(opts.root, `stage-${stages.length}${m[2] !== undefined ? '-' + m[2] : ''}`)
      mkdirSync(dir, { recursive: true })
      chmodSync(dir, 0o755)
      current = { name: m[2] ?? null, base: m[1], dir, workdir: '/', env: {}, user: null, entrypoint: [], cmd: [], healthcheck: null, volumes: [], expose: [], stopSignal: null }
      stages.push(current)
      log(`stage ${stages.length - 1}: FROM ${m[1]} (the host's node stands in for the base image's)`)
      continue
    }
    if (current === undefined && ins.op === 'ARG') continue // build arguments may precede FROM
    if (current === undefined) throw new Error(`${where}: before any FROM`)
    const stage = current
    switch (ins.op) {
      case 'WORKDIR':
        stage.workdir = posix.resolve(stage.workdir, ins.args)
        mkdirSync(join(stage.dir, stage.workdir), { recursive: true })
        break
      case 'ENV':
        Object.assign(stage.env, parseEnv(ins.args))
        break
      case 'ARG':
      case 'LABEL':
        break
      case 'USER':
        stage.user = ins.args
        break
      case 'VOLUME':
        stage.volumes.push(...(ins.args.startsWith('[') ? JSON.parse(ins.args) as string[] : ins.args.split(/\s+/)))
        break
      case 'EXPOSE':
        stage.expose.push(...ins.args.split(/\s+/))
        break
      case 'STOPSIGNAL':
        stage.stopSignal = ins.args
        break
      case 'ENTRYPOINT':
        stage.entrypoint = commandOf(ins.args)
        stage.cmd = [] // as Docker does: a new ENTRYPOINT resets an inherited CMD
        break
      case 'CMD':
        stage.cmd = commandOf(ins.args)
        break
      case 'HEALTHCHECK': {
        const { rest } = splitFlags(ins.args)
        if (rest === 'NONE') { stage.healthcheck = null; break }
        const m = /^CMD\s+(.*)$/.exec(rest)
        if (m === null) throw new Error(`${where}: expected HEALTHCHECK [options] CMD ...`)
        stage.healthcheck = commandOf(m[1])
        break
      }
      case 'COPY': {
        const { flags, rest } = splitFlags(ins.args)
        const parts = rest.startsWith('[') ? JSON.parse(rest) as string[] : rest.split(/\s+/)
        const dest = parts.pop()!
        if (parts.length === 0) throw new Error(`${where}: COPY needs a source and a destination`)
        let from: Stage | null = null
        if (flags.from !== undefined) {
          from = stages.find((s, i) => s.name === flags.from || String(i) === flags.from) ?? null
          if (from === null || from === stage) throw new Error(`${where}: no earlier stage named ${flags.from}`)
        }
        const target = inStage(stage, dest)
        const intoDir = dest.endsWith('/') || parts.length > 1
        for (const src of parts) {
          const source = from === null ? join(opts.context, posix.normalize(src)) : join(from.dir, posix.resolve(from.workdir, src))
          if (!source.startsWith(from === null ? opts.context : from.dir)) throw new Error(`${where}: ${src} is outside the context`)
          if (!existsSync(source)) throw new Error(`${where}: ${src} does not exist in ${from === null ? 'the build context (is it committed?)' : `stage ${flags.from}`}`)
          const isDir = statSync(source).isDirectory()
          // Docker copies a directory's contents, a file into a directory destination.
          const to = isDir ? target : (intoDir ? join(target, basename(source)) : target)
          mkdirSync(isDir ? to : join(to, '..'), { recursive: true })
          cpSync(source, to, { recursive: true, verbatimSymlinks: true })
          if (flags.chown !== undefined) chownTree(to, opts.uid, opts.gid)
        }
        break
      }
      case 'RUN': {
        if (/(^|[\s=:;&|'"(])\/[A-Za-z]/.test(ins.args.startsWith('[') ? (JSON.parse(ins.args) as string[]).slice(1).join(' ') : ins.args)) {
          throw new Error(`${where}: an absolute path in RUN cannot be replayed outside a container; use a path relative to WORKDIR and COPY --from it`)
        }
        const cwd = join(stage.dir, stage.workdir)
        log(`stage ${stages.length - 1}: RUN ${ins.args}`)
        // Without tap's NODE_OPTIONS hooks and coverage (see untracked() in packaging.ts): a build has neither.
        const r = await runShell(['env', '-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE', ...commandOf(ins.args)], cwd, { ...process.env, ...opts.runEnv, ...stage.env })
        if (r.code !== 0) throw new Error(`${where}: exited with ${r.code}:\n${r.output.slice(-4000)}`)
        break
      }
      default:
        throw new Error(`${where}: the replay does not know ${ins.op}`)
    }
  }
  if (stages.length === 0) throw new Error('the Dockerfile has no FROM')
  return stages
}

/** The stage's environment as the container sees it, with container paths (/data) mapped into the stage directory. */
export function containerEnv (stage: Stage): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(stage.env)) out[name] = /^\/\S*$/.test(value) ? join(stage.dir, value) : value
  return out
}
