"""WCF peers: Mono's System.ServiceModel clients and a self-hosted ServiceHost (C#)."""
