# Peft hub image: the web app (UI + REST + inference), the training worker (`--role worker`) and inference replicas
# all run this one image; docker-compose.yml shows the multi-machine layout.
#   docker build -t peft-hub .                      CPU libtorch (default)
#   docker build -t peft-hub:cuda --build-arg CUDA=true .   CUDA libtorch (TorchSharp-cuda-linux); run with --gpus all
# .ci/run runs the same publish command and starts the published app with these ENV values.

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
ARG CUDA=false
WORKDIR /src
COPY . .
# TorchBackend (Directory.Build.props) picks the libtorch package: cpu -> libtorch-cpu-linux-x64, cuda -> TorchSharp-cuda-linux.
RUN dotnet publish Peft.Web -c Release -o /app -p:TorchBackend=$([ "$CUDA" = "true" ] && echo cuda || echo cpu)

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app .
# The bundled demo model and corpora, registered on first start.
COPY models /app/models
COPY data /app/data
ENV ASPNETCORE_ENVIRONMENT=Production \
    ASPNETCORE_HTTP_PORTS=8080 \
    Hub__DataDir=/data/hub \
    Hub__ModelsDir=/app/models \
    Hub__CorporaDir=/app/data \
    Serving__ModelPath=/app/models/peft-demo \
    Serving__AdaptersPath=/data/adapters \
    Logging__Console__FormatterName=json
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["dotnet", "Peft.Web.dll"]
