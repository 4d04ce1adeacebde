module github.com/l5d-go/l5d/injector

go 1.26
