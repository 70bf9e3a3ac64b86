module example.com/healthcheck

go 1.22
