"""rclpy.callback_groups (stand-in)."""


class CallbackGroup:
    def add_entity(self, entity):
        pass


class MutuallyExclusiveCallbackGroup(CallbackGroup):
    pass


class ReentrantCallbackGroup(CallbackGroup):
    pass
