# The standalone tsnet-dns: `docker run --network … -v ./records.json:/etc/tsnet/records.json tsnet-dns`
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
COPY resolvers ./resolvers
COPY bench ./bench
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
EXPOSE 53/udp 53/tcp
ENTRYPOINT ["./bin/tsnet-dns"]
# Recursion is REFUSED to sources outside loopback and the records' subnets unless --allow says otherwise.
CMD ["--records", "/etc/tsnet/records.json", "--listen", "0.0.0.0:53"]
