"""The Node.js peers (Microsoft's hyco-https / hyco-ws, node-soap) and their smoke tests."""
