module github.com/l5d-go/l5d/proxy

go 1.26
