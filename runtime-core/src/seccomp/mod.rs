//! Seccomp profiles (OCI `linux.seccomp`, Kubernetes/Docker JSON) and their
//! notify-safety analysis.
