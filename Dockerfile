# ExtProc container image. Build: docker build -t extproc .
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish ExtProc.Service/ExtProc.Service.csproj -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app .
# gRPC (ext_proc + health) and the admin port.
EXPOSE 50051 9000
USER app
ENTRYPOINT ["dotnet", "ExtProc.Service.dll"]
