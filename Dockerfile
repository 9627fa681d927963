# The standalone tsnet-dns: `docker run --network … -v ./records.json:/etc/tsnet/records.json tsnet-dns`
# BASE: any image with Node.js 20 and npm (test/398 builds one from this machine's own node).
# NPM_CI_FLAGS: `--offline` builds with no registry, from an npm cache mounted at /root/.npm.
ARG BASE=node:20-bookworm-slim
FROM ${BASE} AS build
ARG NPM_CI_FLAGS=
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund ${NPM_CI_FLAGS}
COPY src ./src
COPY resolvers ./resolvers
COPY bench ./bench
RUN npm run build && npm prune --omit=dev

FROM ${BASE}
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
EXPOSE 53/udp 53/tcp
ENTRYPOINT ["./bin/tsnet-dns"]
# Recursion is REFUSED to sources outside loopback and the records' subnets unless --allow says otherwise.
CMD ["--records", "/etc/tsnet/records.json", "--listen", "0.0.0.0:53"]
