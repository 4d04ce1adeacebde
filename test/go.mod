module github.com/l5d-go/l5d/test

go 1.26
