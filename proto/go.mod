module github.com/l5d-go/l5d/proto

go 1.26
