# One image for both roles: `npm run api` and `npm run worker` (see docker-compose.yml).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# postinstall patches dependencies (scripts/patch-deps.mjs): it must be there when npm ci runs.
COPY scripts/patch-deps.mjs ./scripts/
RUN npm ci --omit=dev && npm cache clean --force
COPY tsconfig.json ./
COPY drizzle ./drizzle
COPY src ./src
USER node
EXPOSE 3000
# The worker bundles workflow code at start (a few seconds); the API starts at once.
CMD ["node", "--import", "tsx", "src/api/server.ts"]
