//! The embedded Kubernetes API server, tenant router, controllers and ControlPlane manager (see the storage issue for what lands first).
