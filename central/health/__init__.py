"""Operations: ``/healthz`` for load balancers and systemd checks, ``/metrics`` for Prometheus."""
