//! The crew's gRPC API over real mutual TLS 1.3, against an in-process crew
//! on 127.0.0.1 with a PKI made at test time (certgen). Jobs run for real:
//! as root, with cgroups and namespaces; otherwise every test says SKIPPED.

mod authz;
mod connections;
mod jobs;
mod requests;
mod support;
mod tls;
mod unarchive;
