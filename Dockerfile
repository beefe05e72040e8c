# regproxy's container image, built offline: no base image is pulled.
#
# Build the binary on the host first, statically linked:
#   RUSTFLAGS='-C target-feature=+crt-static' \
#     cargo build --release --target x86_64-unknown-linux-gnu
#   cp target/x86_64-unknown-linux-gnu/release/regproxy contrib/regproxy
# then: docker-compose build (or docker build -t regproxy .)
#
# The image holds only the binary. It runs as root inside the container so
# it can write the mounted ./data, ./certs and ./htpasswd whatever their
# owner on the host; use `user:` in compose.yaml to run as your own uid
# (the mounted paths must then be writable by it).
FROM scratch
COPY contrib/regproxy /regproxy
WORKDIR /srv/regproxy
EXPOSE 5000 5001
ENTRYPOINT ["/regproxy"]
CMD ["serve", "--config", "/srv/regproxy/proxy.yaml"]
