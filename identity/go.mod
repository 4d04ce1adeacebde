module github.com/l5d-go/l5d/identity

go 1.26
