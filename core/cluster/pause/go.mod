module deploy-mcp/pause

go 1.22
