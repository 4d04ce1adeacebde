module github.com/l5d-go/l5d/proxy

go 1.26.0

require github.com/prometheus/common v0.72.0 // indirect
