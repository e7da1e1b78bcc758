using TorchSharp;
public class TorchSmokeTests
{
    [Fact]
    public void TorchLoads() => Assert.Equal(6f, torch.ones(2, 3).sum().item<float>());
}
