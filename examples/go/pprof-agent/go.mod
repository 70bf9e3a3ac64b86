module example.com/pprofagent

go 1.22
