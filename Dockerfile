# vbackup's one image: kubectl-vbackup (mover pods, scheduled runs) and vbackup-webhook, both
# statically linked, on an empty base: no shell, no package manager, nothing else to patch.
#
# No registry is needed: the build context holds prebuilt static binaries. scripts/image.sh
# builds them and the image, and checks it; by hand:
#
#   RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked \
#       --target x86_64-unknown-linux-gnu -p kubectl-vbackup -p vbackup-webhook
#   mkdir ctx && cp Dockerfile LICENSE /etc/ssl/certs/ca-certificates.crt ctx/ &&
#   cp target/x86_64-unknown-linux-gnu/release/{kubectl-vbackup,vbackup-webhook} ctx/
#   buildah bud -t ghcr.io/vbackup/vbackup:$VERSION ctx     # or: docker build ctx
FROM scratch
COPY LICENSE /LICENSE
# Root certificates for S3 endpoints over HTTPS (the Kubernetes API's CA comes with the pod).
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY kubectl-vbackup vbackup-webhook /usr/local/bin/
ENV PATH=/usr/local/bin
# The user vbackup's pods run as (runAsNonRoot needs a numeric user).
USER 65532:65532
ENTRYPOINT ["kubectl-vbackup"]
