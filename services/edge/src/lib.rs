//! The public edge. In `--target all` the services are mounted in-process on the edge's port
//! by the serving kit (`echo-runtime`); forwarding to services in other processes (split mode)
//! arrives with the Auth issue, which adds the JWT check the edge applies before forwarding.
