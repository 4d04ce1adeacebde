module github.com/l5d-go/l5d/proxy-init

go 1.26
