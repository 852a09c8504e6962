# session-proxy as a container (for example a sidecar next to an app).
# Build: docker build -t session-proxy .
# Run:   docker run -p 8080:8080 -v session-proxy-data:/data session-proxy
# test/packaging/dockerfile-replay.test.ts replays this file without a Docker
# engine: keep RUN paths relative to WORKDIR (absolute ones cannot be replayed).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.addon.json ./
# `npm ci` runs prepare -> build, which needs scripts/compile-config.mjs.
COPY scripts ./scripts
COPY src ./src
COPY config ./config
COPY public ./public
# Build, drop the dev dependencies, and make the data directory the final
# stage copies (owned by the runtime user) to /data.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund && mkdir -p data

FROM node:24-bookworm-slim
WORKDIR /app
# Every setting is an environment variable (docs/environment.md), so a
# replaced CMD (`docker run image --reverse URL`) keeps these. Listening
# beyond loopback needs a client allowlist or proxy auth (no open proxy):
# these are Docker's private networks; narrow them, or set
# SESSION_PROXY_PROXY_AUTH_USERS. Logs are JSON lines on stdout (run without -t).
ENV NODE_ENV=production \
    SESSION_PROXY_HOST=0.0.0.0 \
    SESSION_PROXY_PORT=8080 \
    SESSION_PROXY_DATA_DIR=/data \
    SESSION_PROXY_ALLOW_CLIENTS=172.16.0.0/12,10.0.0.0/8,192.168.0.0/16
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/config ./config
COPY --from=build /app/public ./public
COPY --from=build --chown=node:node /app/data /data
USER node
VOLUME /data
EXPOSE 8080
# node, not curl (the slim image has none): GET /_session/health on loopback,
# with SESSION_PROXY_ADMIN_TOKEN when set.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["node", "dist/healthcheck.js"]
# Exec form: node is PID 1 and gets SIGTERM itself (graceful shutdown).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli.js"]
CMD []
