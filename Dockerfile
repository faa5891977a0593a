# The Cryptlet runtime's image: one image, every role (`cryptlet serve <api|worker|triggers|all>`).
# Build: docker build -t cryptlet-runtime .   Run: docker run cryptlet-runtime worker (see docs/deployment.md).

# Build stage: every dependency (native modules such as isolated-vm compile here, with the full image's tools),
# the contracts compiled once (the chain writer reads their ABIs), then the dev dependencies pruned.
FROM node:24-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/postinstall.mjs scripts/postinstall.mjs
RUN npm install --no-audit --no-fund
COPY contracts contracts
COPY hardhat.config.ts tsconfig.json ./
RUN npx hardhat build --quiet
COPY runtime runtime
COPY docs/openapi.yaml docs/proof-bundle.schema.json docs/
RUN npm prune --omit=dev --no-audit --no-fund

# Runtime stage: Node 24, production dependencies only, the unprivileged `node` user (uid 1000).
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=root:root /app/package.json /app/package-lock.json ./
COPY --from=build --chown=root:root /app/node_modules node_modules
COPY --from=build --chown=root:root /app/artifacts artifacts
COPY --from=build --chown=root:root /app/contracts contracts
COPY --from=build --chown=root:root /app/runtime runtime
COPY --from=build --chown=root:root /app/docs docs
# Where the Redis epoch file lives (redisDurability.epochFile): a volume in compose and Kubernetes.
RUN mkdir -p /var/lib/cryptlet && chown node:node /var/lib/cryptlet
USER node
# 8080: the API (role api); 9464: the health endpoint of worker and trigger processes.
EXPOSE 8080 9464
ENTRYPOINT ["node", "runtime/cli/main.ts", "serve"]
CMD ["all"]
