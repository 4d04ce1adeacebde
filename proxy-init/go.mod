module github.com/l5d-go/l5d/proxy-init

go 1.26.0

require golang.org/x/sys v0.48.0
