# session-proxy as a container (for example a sidecar next to an app).
# Build: docker build -t session-proxy .
# Run:   docker run -p 8080:8080 -v session-proxy-data:/data session-proxy
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY config ./config
COPY public ./public
# `npm ci` runs the build (prepare); then drop the dev dependencies.
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    SESSION_PROXY_DATA_DIR=/data \
    SESSION_PROXY_HOST=0.0.0.0
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/config ./config
COPY --from=build /app/public ./public
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 8080
# Listening beyond loopback needs a client allowlist or proxy auth (no open
# proxy): these are Docker's private networks. Narrow them, or configure
# proxyAuth in a config file mounted at /config.yaml (--config /config.yaml).
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["--allow-clients", "172.16.0.0/12", "--allow-clients", "10.0.0.0/8", "--allow-clients", "192.168.0.0/16"]
